"""Amharic (Ge'ez script) text: script facts, normalization, numerals, number words, calendar,
transliteration. `utils.amharic_processing` re-exports the public names."""
