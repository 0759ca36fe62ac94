"""Reporting: console tables, Markdown, figures, and the run and study reports."""
