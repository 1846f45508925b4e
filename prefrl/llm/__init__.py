"""Preference fine-tuning of causal language models on prefrl's loss core (needs `pip install 'prefrl[llm]'`)."""
