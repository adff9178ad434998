"""cargoscreen: advance cargo screening of Entry Summary Declarations on Apache Beam."""
import logging

__version__ = "0.1.0"

# Importing Beam warns, through the root logger, that a Google client we never use is missing: a
# line on the stderr of every command, service and test run that says nothing about them.
logging.getLogger().addFilter(lambda record: "apitools not found" not in record.getMessage())
