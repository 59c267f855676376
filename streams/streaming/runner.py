"""The confluent runtime's names, where earlier code imports them (they live in ``streams.runtime``)."""

from streams.runtime.confluent import (
    Guarantee,
    MessageProcessor,
    Runner,
    RunnerConfig,
    RunnerStats,
    in_message,
)

__all__ = ["Guarantee", "MessageProcessor", "Runner", "RunnerConfig", "RunnerStats", "in_message"]
