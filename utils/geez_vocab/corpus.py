"""The reference corpus that decides which tokens a Ge'ez vocabulary may give up: text this
machine's packages ship, in many languages. Every translated string of the gettext catalogs
under /usr/share/locale (about 1.4 million distinct strings in 199 locales here), the English
prose of /usr/share/common-licenses, and the paragraphs of Python's own documentation topics
(`pydoc_data`). A token no string of it uses is rare enough to give
up; the half of the corpus not used for choosing measures what changed.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

LOCALE_ROOT = Path("/usr/share/locale")
PROSE_ROOT = Path("/usr/share/common-licenses")
_MO_MAGIC = 0x950412DE


@dataclass(frozen=True)
class ReferenceCorpus:
    """Distinct strings, sorted; `fingerprint` identifies them (sha256 of the strings)."""

    texts: tuple[str, ...]
    fingerprint: str

    def halves(self, seed: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(choosing half, held-out half); see `split_halves`."""
        return split_halves(self.texts, seed)


def split_halves(texts: Iterable[str], seed: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(choosing half, held-out half): each string's side follows from a hash of the seed and
    the string, so the split is reproducible and needs no random state."""
    choosing, held_out = [], []
    for text in texts:
        digest = hashlib.blake2b(f"{seed}\x00{text}".encode(), digest_size=1).digest()
        (choosing if digest[0] % 2 == 0 else held_out).append(text)
    return tuple(choosing), tuple(held_out)


def catalog_strings(path: Path) -> Iterator[str]:
    """The translated strings (msgstr, plural forms apart) of one .mo file; nothing for a file
    that is not one."""
    data = path.read_bytes()
    if len(data) < 20:
        return
    order = {_MO_MAGIC: "<", 0xDE120495: ">"}.get(struct.unpack("<I", data[:4])[0])
    if order is None:
        return
    _, count, _, table = struct.unpack(order + "4I", data[4:20])
    for entry in range(count):
        start = table + 8 * entry
        if start + 8 > len(data):
            return
        length, offset = struct.unpack(order + "2I", data[start : start + 8])
        for text in data[offset : offset + length].decode("utf-8", "replace").split("\x00"):
            if text.strip():
                yield text


def prose_lines(root: Path = PROSE_ROOT) -> Iterator[str]:
    """Non-empty lines of the licence texts (English prose, plain ASCII)."""
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        for line in path.read_text("utf-8", errors="replace").splitlines():
            if line.strip():
                yield line.strip()


def python_doc_paragraphs() -> Iterator[str]:
    """Paragraphs of the documentation topics that ship with Python (English prose)."""
    from pydoc_data.topics import topics

    for name in sorted(topics):
        for paragraph in topics[name].split("\n\n"):
            text = " ".join(paragraph.split())
            if text:
                yield text


def reference_corpus(
    locale_root: Path = LOCALE_ROOT, prose_root: Path = PROSE_ROOT, every: int = 1
) -> ReferenceCorpus:
    """The corpus of this machine; `every` > 1 keeps every n-th catalog (in path order), a
    smaller corpus for tests. Raises FileNotFoundError when it holds no text."""
    catalogs = sorted(locale_root.rglob("*.mo")) if locale_root.is_dir() else []
    texts = {text for path in catalogs[::every] for text in catalog_strings(path)}
    if prose_root.is_dir():
        texts.update(prose_lines(prose_root))
    texts.update(python_doc_paragraphs())
    if not texts:
        raise FileNotFoundError(
            f"no reference text: no gettext catalogs under {locale_root} and no files under "
            f"{prose_root}"
        )
    ordered = tuple(sorted(texts))
    digest = hashlib.sha256()
    for text in ordered:
        digest.update(text.encode("utf-8", "surrogatepass") + b"\x00")
    return ReferenceCorpus(ordered, digest.hexdigest())
