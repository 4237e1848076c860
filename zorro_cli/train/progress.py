"""Pure pieces of a training run's progress report: the log window and the plain log line.

Off a terminal (nohup, clusters, CI) a run logs one plain line every ``log.every`` steps, never wrapped::

    pretrain step 20/400 (5%) | loss 1.2345 | lr 5.00e-04 | 12.3 clips/s | elapsed 0:12 | eta 3:48

Losses and the rate are averaged over the steps since the previous line (the log window), not one
step's values, so the line and ``metrics.jsonl`` show a smooth curve and a steady rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Keys whose window value is the last step's, not the mean (a schedule, not a measurement).
LAST_VALUE_KEYS = ("lr",)


def format_duration(seconds: float) -> str:
    """``m:ss`` under an hour, ``h:mm:ss`` from one hour on (``65.4`` -> ``'1:05'``)."""
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def eta_seconds(step: int, start_step: int, total: int, elapsed: float) -> float | None:
    """Seconds left at the pace of the steps run by this process so far (None before the first)."""
    done = step - start_step
    if done <= 0:
        return None
    return elapsed / done * (total - step)


@dataclass
class LogWindow:
    """Sums of the per-step stats since the last log line.

    ``clips_per_s`` over the window is clips / seconds (each step weighted by its time, via
    ``step_time_s``), not the mean of per-step rates: one slow step does not hide behind fast ones.
    """

    sums: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    clips: float = 0.0
    seconds: float = 0.0

    def add(self, stats: dict[str, float]) -> None:
        """One optimiser step's stats."""
        self.steps += 1
        dt = stats.get("step_time_s", 0.0)
        self.clips += stats.get("clips_per_s", 0.0) * dt
        self.seconds += dt
        for k, v in stats.items():
            if k in LAST_VALUE_KEYS:
                self.last[k] = v
            elif k != "clips_per_s":
                self.sums[k] = self.sums.get(k, 0.0) + v

    def means(self) -> dict[str, float]:
        """The window's averages (``lr``: the last value)."""
        out = {k: v / max(1, self.steps) for k, v in self.sums.items()}
        out.update(self.last)
        if self.seconds > 0:
            out["clips_per_s"] = self.clips / self.seconds
        return out

    def reset(self) -> None:
        self.sums, self.last, self.steps, self.clips, self.seconds = {}, {}, 0, 0.0, 0.0


def progress_line(mode: str, step: int, total: int, means: dict[str, float], elapsed: float,
                  eta: float | None) -> str:
    """One plain log line (no newline in it, whatever the terminal width)."""
    parts = [f"{mode} step {step}/{total} ({100 * step // max(1, total)}%)"]
    if "loss" in means:
        parts.append(f"loss {means['loss']:.4f}")
    if "lr" in means:
        parts.append(f"lr {means['lr']:.2e}")
    if "clips_per_s" in means:
        parts.append(f"{means['clips_per_s']:.1f} clips/s")
    parts.append(f"elapsed {format_duration(elapsed)}")
    parts.append(f"eta {format_duration(eta) if eta is not None else '?'}")
    return " | ".join(parts)
