"""A name the ingest side writes into the code it hands the worker and the worker reads back, kept apart from
both: the worker never imports the ingest package (nbformat and jsonschema, a fraction of a second of every
worker's start)."""

IMPORT_ERRORS_NAME = "__ingest_import_errors__"  # the list a guarded import appends its failure to
