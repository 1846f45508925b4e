"""Floor 4: who answers (synthetic teachers; the Teacher protocols), which pairs are asked (samplers), and when (schedules)."""
