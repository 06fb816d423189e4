"""Drafters turn a facts sheet (and the timeline) into a Draft. The FactsDrafter needs no LLM."""
