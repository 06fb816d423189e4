"""Source parsers: real vendor formats in, EventRows (or quarantined records with reasons) out.

The registry of parsers lives in ``pipeline.sources.registry``; each vendor has its own module.
"""
