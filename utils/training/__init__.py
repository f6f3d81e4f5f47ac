"""Fine-tuning Whisper: configuration, data, the Lightning module and the run loop."""
