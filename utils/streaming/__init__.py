"""Streaming transcription: chunked audio in, partial (may change) and final (never changes) text
out. Engine code: no UI imports."""
