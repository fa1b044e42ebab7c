"""nerqa_helpers: the tested helper package behind the multi-task NER + QA workbook."""
__version__ = "0.1.0"
