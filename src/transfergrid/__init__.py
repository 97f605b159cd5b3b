"""transfergrid: cross-task x cross-language transfer studies with parameter-efficient fine-tuning."""

__version__ = "0.1.0"
