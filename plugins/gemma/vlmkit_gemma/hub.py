"""One quick probe of the Hugging Face Hub before a Hub id is loaded.

When the Hub cannot be reached, huggingface_hub retries every request five times with backoff:
about 50 s of ``Retrying in 8s [Retry 5/5]`` warnings before the load fails. One request without
retries tells the same thing at once; the backend then loads with ``local_files_only=True``, so a
model already in the cache still works offline and a missing one fails with the usual clear
"not in the local cache" error. huggingface_hub is imported inside the function.
"""

from __future__ import annotations

import logging

__all__ = ["PROBE_TIMEOUT_S", "hub_reachable"]

log = logging.getLogger(__name__)

#: Seconds the probe waits for the Hub to answer.
PROBE_TIMEOUT_S = 10.0


def hub_reachable(model: str, *, revision: str | None = None, endpoint: str | None = None) -> bool:
    """Whether the Hub answers one request for ``model``'s ``config.json`` (no retries).

    Any HTTP answer counts as reachable, errors included (401 for a gated model, 404 for a typo):
    those are reported by the normal loading path with their own messages. Only a transport
    failure (no DNS, refused or dropped connection, timeout) counts as unreachable.
    ``endpoint`` defaults to ``$HF_ENDPOINT`` (https://huggingface.co).
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    url = hf_hub_url(model, "config.json", revision=revision, endpoint=endpoint)
    try:
        get_hf_file_metadata(url, timeout=PROBE_TIMEOUT_S, retry_on_errors=False, endpoint=endpoint)
    except HfHubHTTPError:  # an HTTP answer (also an OSError): the Hub is there
        return True
    except Exception as err:  # no answer: DNS, refused or dropped connection, timeout, proxy
        log.info("the Hugging Face Hub is unreachable (%s: %s)", type(err).__name__, err)
        return False
    return True
