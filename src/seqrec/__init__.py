"""seqrec: deep recommendation models for user behaviour sequences."""

from seqrec.threads import set_env_defaults as _set_env_defaults

_set_env_defaults()  # before anything loads torch's OpenMP runtime (see seqrec.threads)

__version__ = "0.1.0"
