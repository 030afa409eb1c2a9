"""The report: tables of the headline numbers, rendered to Markdown and HTML."""
