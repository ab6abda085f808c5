"""Detection: the engine (state, signals, scoring, policy) and its replay driver."""

from distillwatch.detect.engine import AccountState, Engine
from distillwatch.detect.replay import ReplayResult, replay
from distillwatch.detect.scoring import LogOddsScorer

__all__ = ["AccountState", "Engine", "LogOddsScorer", "ReplayResult", "replay"]
