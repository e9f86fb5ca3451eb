"""Which exceptions report a mistake in the user's request (printed as one line) rather than a defect (a traceback).

The table names each class by module, so this floor imports none of them: a module not yet imported cannot have
raised. `moon` (augment.cli) prints such an error in one line with status 2; the trainer's driver does the same for
one raised on a Ray Train worker (model.train.failure_reason).
"""
from __future__ import annotations

import logging
import sys
import traceback

from augment.core.names import Reason

log = logging.getLogger(__name__)

CONFIG_ERRORS = (("augment.core.config", "ConfigError"),)  # the run config's and the model config's
REQUEST_ERRORS = (("augment.io", "InputError"), ("augment.plan", "RunMismatch"), ("model.evaluate", "ProtocolError"),
                  ("ner.lexicon", "LexiconError"), ("augment.core.schema", "SchemaVersionError"),
                  ("augment.core.manifest", "RunRecordError"), ("augment.core.storage", "AddressError"))
PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError)


def user_error(exc: BaseException) -> str | None:
    """'config error' or 'error' when `exc` reports a mistake in the request, else None (a defect: traceback)."""
    def loaded(names):
        return tuple(getattr(sys.modules[m], n) for m, n in names if m in sys.modules)

    if isinstance(exc, loaded(CONFIG_ERRORS)):
        return "config error"
    if isinstance(exc, PATH_ERRORS + loaded(REQUEST_ERRORS)):
        return "error"
    return None


def stage_error(stage: str, exc: BaseException, product_id=None) -> tuple[str, str]:
    """The quarantine (reason, detail) of a product a stage raised on, logged with a short traceback: the reason
    is `stage_error:<exception class>`, the detail the message's first line (300 characters at most). The batch
    stages' row isolation (augment.pipeline) and the vllm dataset stages' (augment.llm.vllm_engine.isolated) share
    it."""
    text = str(exc).strip()
    detail = text.splitlines()[0][:300] if text else ""
    which = f"product {product_id}" if product_id is not None else "a row"
    log.error("stage %s quarantines %s: %s: %s\n%s", stage, which, type(exc).__name__, detail,
              traceback.format_exc(limit=3))
    return Reason.STAGE_ERROR.of(type(exc).__name__), detail
