"""cargoscreen: advance cargo screening of Entry Summary Declarations on Apache Beam."""

__version__ = "0.1.0"
