"""The LightningModule: one shared step for train, validation and test over a Whisper (plain or
LoRA-wrapped). Validation and test also decode greedily and score WER/CER under the
language-aware normalizer, logged as `val/wer`, `val/cer` (fractions) and `test/...`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from transformers import WhisperTokenizerFast

from evaluation.scoring import utterance_scores
from utils.training.config import TrainConfig
from utils.training.heldout import script_suppression
from utils.training.model import is_lora

SAMPLES_KEPT = 4  # reference/hypothesis pairs kept from each validation for the dashboard


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run stops and keeps its last good checkpoint."""


@dataclass
class _EvalTally:
    """Edit counts of one validation or test pass (summed over ranks before logging)."""

    counts: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])
    samples: list[tuple[str, str]] = field(default_factory=list)

    def add(self, references: Sequence[str], hypotheses: Sequence[str], language: str) -> None:
        for u in utterance_scores(references, hypotheses, language):
            for i, value in enumerate((u.words.errors, u.words.reference_length,
                                       u.chars.errors, u.chars.reference_length)):  # fmt: skip
                self.counts[i] += value
        room = SAMPLES_KEPT - len(self.samples)
        self.samples.extend(zip(references[:room], hypotheses[:room], strict=True))


class WhisperFineTuner(L.LightningModule):
    """Trains `model` (a `WhisperForConditionalGeneration` or its PEFT wrapper) on batches of
    `utils.training.data.WhisperCollator`: input_features (B, n_mels, 3000) float32,
    decoder_input_ids and labels (B, T) int64 (labels -100 where no loss), and texts,
    languages, tasks, ids lists."""

    def __init__(
        self, model: torch.nn.Module, tokenizer: WhisperTokenizerFast, config: TrainConfig
    ):
        super().__init__()
        self.model = model.train()  # from_pretrained leaves eval mode (no dropout)
        self.tokenizer = tokenizer
        self.config = config
        self.learning_rate = config.learning_rate  # the LR finder (Lightning's tuner) sets this
        # A LoRA checkpoint holds only the trainable weights; the base comes from the base model.
        self.strict_loading = not is_lora(model)
        self.micro_losses: list[float] = []
        self.step_loss = math.nan  # mean loss of the last optimizer step's micro-batches
        self.last_grad_norm = math.nan
        self.last_samples: list[tuple[str, str]] = []
        self.validated_at_step = -1  # global step of the last validation pass
        self._tally = _EvalTally()

    # -- the shared step --------------------------------------------------------------------
    def _shared_step(self, batch: dict[str, Any]) -> torch.Tensor:
        """Teacher-forced cross-entropy, averaged over the label tokens that carry loss."""
        output = self.model(
            input_features=batch["input_features"],
            decoder_input_ids=batch["decoder_input_ids"],
            labels=batch["labels"],
            use_cache=False,
        )
        return output.loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        self._seed_step(batch, batch_idx)
        loss = self._shared_step(batch)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the training loss became {loss.item()} at step {self.global_step + 1} "
                f"(batch {batch.get('ids', [])[:4]}...); the run stopped and kept its last good "
                "checkpoint. Lower the learning rate, or check the data of that batch."
            )
        self._mark_consumed(batch)
        self.micro_losses.append(loss.detach().item())
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["ids"]))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._evaluation_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._evaluation_step(batch, "test")

    def _evaluation_step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        loss = self._shared_step(batch)
        self.log(f"{stage}/loss", loss, sync_dist=True, batch_size=len(batch["ids"]))
        hypotheses = self.transcribe_batch(batch)
        for language in sorted(set(batch["languages"])):
            chosen = [i for i, lang in enumerate(batch["languages"]) if lang == language]
            self._tally.add([batch["texts"][i] for i in chosen], [hypotheses[i] for i in chosen],
                            language)  # fmt: skip
        return loss

    # -- decoding ---------------------------------------------------------------------------
    @torch.no_grad()
    def transcribe_batch(self, batch: dict[str, Any]) -> list[str]:
        """Greedy transcripts, decoded per (language, task) group of the batch."""
        texts = [""] * len(batch["ids"])
        groups: dict[tuple[str, str], list[int]] = {}
        for i, key in enumerate(zip(batch["languages"], batch["tasks"], strict=True)):
            groups.setdefault(key, []).append(i)
        for (language, task), indices in groups.items():
            ids = self.model.generate(
                input_features=batch["input_features"][indices],
                language=language,
                task=task,
                max_new_tokens=self.config.generation_max_tokens,
                num_beams=1,
                do_sample=False,
                use_cache=True,
                **script_suppression(self.model, self.tokenizer, language),
            )
            decoded = self.tokenizer.batch_decode(ids, skip_special_tokens=True)
            for i, text in zip(indices, decoded, strict=True):
                texts[i] = text.strip()
        return texts

    # -- validation figures -----------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._tally = _EvalTally()

    def on_test_epoch_start(self) -> None:
        self._tally = _EvalTally()

    def on_validation_epoch_end(self) -> None:
        self._log_rates("val")
        self.validated_at_step = self.global_step

    def on_test_epoch_end(self) -> None:
        self._log_rates("test")

    def _log_rates(self, stage: str) -> None:
        counts = torch.tensor(self._tally.counts, dtype=torch.float64, device=self.device)
        gathered = self.all_gather(counts)
        total = gathered.sum(0) if gathered.dim() == 2 else gathered
        word_errors, words, char_errors, chars = total.tolist()
        self.log(f"{stage}/wer", word_errors / max(words, 1.0), rank_zero_only=True)
        self.log(f"{stage}/cer", char_errors / max(chars, 1.0), rank_zero_only=True)
        self.last_samples = list(self._tally.samples)

    # -- optimisation -----------------------------------------------------------------------
    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        grads = [p.grad.detach().norm(2) for p in self.parameters() if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack(grads)) if grads else torch.tensor(0.0)
        self.last_grad_norm = float(norm)
        self.step_loss = sum(self.micro_losses) / max(len(self.micro_losses), 1)
        self.micro_losses = []
        self.log("train/grad_norm", self.last_grad_norm)
        self.log("train/lr", optimizer.param_groups[0]["lr"])

    def configure_optimizers(self) -> dict[str, Any]:
        from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

        optimizer = torch.optim.AdamW(
            self._parameter_groups(), lr=self.learning_rate, weight_decay=self.config.weight_decay
        )
        schedule = {"linear": get_linear_schedule_with_warmup,
                    "cosine": get_cosine_schedule_with_warmup}[self.config.schedule]  # fmt: skip
        scheduler = schedule(optimizer, self.config.warmup_steps, self.config.max_steps)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def _parameter_groups(self) -> list[dict[str, Any]]:
        """Re-purposed token rows (PEFT trainable tokens) learn `new_token_lr_scale` times
        faster: they start as averages of other tokens and have the most to learn."""
        new_rows, rest = [], []
        for name, parameter in self.named_parameters():
            if parameter.requires_grad:
                (new_rows if "trainable_tokens_delta" in name else rest).append(parameter)
        groups = [{"params": rest}]
        if new_rows:
            scaled = self.learning_rate * self.config.new_token_lr_scale
            groups.append({"params": new_rows, "lr": scaled})
        return groups

    # -- exact resume -----------------------------------------------------------------------
    def _seed_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Dropout draws depend only on (seed, epoch, batch), so a resumed run repeats them."""
        epoch, number = batch.get("epoch", -1), batch.get("batch", -1)
        if number < 0:
            epoch, number = self.current_epoch, batch_idx
        torch.manual_seed((self.config.seed * 1_000_003 + epoch * 100_003 + number) % 2**63)

    def _mark_consumed(self, batch: dict[str, Any]) -> None:
        """Tell the data module this batch is trained, before any checkpoint of this step."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        if datamodule is not None and hasattr(datamodule, "mark_consumed"):
            datamodule.mark_consumed(batch.get("epoch", -1), batch.get("batch", -1))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if is_lora(self.model):  # the frozen base is reloaded from the base model on resume
            keep = {name for name, p in self.named_parameters() if p.requires_grad}
            checkpoint["state_dict"] = {
                k: v for k, v in checkpoint["state_dict"].items() if k in keep
            }
