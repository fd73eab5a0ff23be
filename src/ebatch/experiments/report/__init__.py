"""The report layer: tables, Markdown prose, figures and files rendered from the study layer's typed results.
Every number and claim in a report comes from the result (its configuration included) or a preset."""
