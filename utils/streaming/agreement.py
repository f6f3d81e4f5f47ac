"""LocalAgreement (Macháček et al. 2023, whisper_streaming): a word is final once two successive
hypotheses of the same growing audio buffer agree on it and on every word before it.

Hypotheses carry absolute timestamps (seconds from the stream start). Words of a new hypothesis
that end before the last committed word are dropped, and a head that repeats the committed tail
(Whisper re-transcribing the overlap) is cut, so nothing is committed twice.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass, field

from utils.transcription.results import Word

OVERLAP_SLACK = 0.1  # seconds: a word starting this much before the committed end may be new
MAX_OVERLAP_WORDS = 5  # longest repeated n-gram looked for between committed tail and new head
_PUNCTUATION = string.punctuation + "።፣፤፥፦፧፨፡"


def word_key(word: Word) -> str:
    """What two hypotheses must share for a word to match: lower case, no edge punctuation."""
    return word.word.strip().strip(_PUNCTUATION).casefold()


@dataclass
class LocalAgreement:
    """Commit policy over successive hypotheses. `update` returns the words that became final
    and the unstable tail; `flush` finalizes the tail (end of speech)."""

    committed_end: float = 0.0  # seconds: end of the last committed word
    committed_tail: list[Word] = field(default_factory=list)  # last committed words (overlap)
    previous: list[Word] = field(default_factory=list)  # last hypothesis, uncommitted part

    def _fresh(self, hypothesis: Sequence[Word]) -> list[Word]:
        """The hypothesis without words already committed (by time, then by repeated text)."""
        new = [w for w in hypothesis if w.start > self.committed_end - OVERLAP_SLACK]
        if not new or not self.committed_tail or abs(new[0].start - self.committed_end) > 1.0:
            return new
        tail = [word_key(w) for w in self.committed_tail]
        for size in range(min(MAX_OVERLAP_WORDS, len(tail), len(new)), 0, -1):
            if tail[-size:] == [word_key(w) for w in new[:size]]:
                return new[size:]
        return new

    def _commit(self, words: list[Word]) -> list[Word]:
        if words:
            self.committed_end = words[-1].end
            self.committed_tail = (self.committed_tail + words)[-MAX_OVERLAP_WORDS:]
        return words

    def update(self, hypothesis: Sequence[Word]) -> tuple[list[Word], list[Word]]:
        """(newly final words, unstable tail) after a new hypothesis of the buffer."""
        new = self._fresh(hypothesis)
        agreed = 0
        while agreed < min(len(new), len(self.previous)) and word_key(new[agreed]) == word_key(
            self.previous[agreed]
        ):
            agreed += 1
        final = self._commit(new[:agreed])
        self.previous = new[agreed:]
        return final, list(self.previous)

    def flush(self, drop_below: float = 0.0, keep_last: int = 0) -> list[Word]:
        """Finalize the unstable tail (the speech ended: nothing will revise it). Trailing words
        with probability under `drop_below` are dropped: unconfirmed words Whisper adds on the
        silence after speech ("Please.", "is.") come with probabilities near 0.1. The last
        `keep_last` words stay unstable (a buffer cut at a cap may have cut the last word)."""
        tail = list(self.previous)
        while tail and tail[-1].probability < drop_below:
            tail.pop()
        kept = tail[len(tail) - keep_last :] if 0 < keep_last < len(tail) else []
        self.previous = kept
        return self._commit(tail[: len(tail) - len(kept)])
