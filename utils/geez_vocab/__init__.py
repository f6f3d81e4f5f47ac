"""A Ge'ez-aware vocabulary for Whisper: one token per Ethiopic character, with the same
vocabulary size and special ids (issue 8)."""
