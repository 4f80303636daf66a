"""VLM Arena: blind side-by-side battles between vision-language models."""

__version__ = "0.1.0"
