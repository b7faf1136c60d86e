"""optimizer: prompts and the versions each conversation gets."""
