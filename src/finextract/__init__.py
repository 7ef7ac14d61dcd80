"""finextract: noisy financial text to structured JSON with small fine-tuned models.

The Python API mirrors the CLI::

    from finextract import load_task, load_extractor, score, read_records
    task = load_task("merchant")
    ex = load_extractor("runs/quickstart")          # any backend's run directory
    ex.predict(["SQ *TURTLE TOWER SAN FRANCISCO CA"])
"""

from finextract.extractor import Extractor, load_extractor
from finextract.records import Record, read_records, read_texts, write_records
from finextract.scoring import ScoreReport, score
from finextract.tasks import Task, load_task
from finextract.validate import check_file

__version__ = "0.1.0"

__all__ = ["Extractor", "load_extractor", "Record", "read_records", "read_texts", "write_records",
           "ScoreReport", "score", "Task", "load_task", "check_file", "__version__"]
