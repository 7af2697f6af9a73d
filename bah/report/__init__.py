"""The report of a finished run (Markdown + PNG)."""
