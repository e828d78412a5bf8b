"""Training-run health from training_metrics: smoothed loss, divergence and plateau flags per session.

Column types and descriptions are in _python__models.yml.
"""

import math

import numpy as np

EMA_ALPHA = 0.1
MIN_POINTS = 10
DIVERGENCE_RATIO = 1.25  # smoothed loss 25% above its best so far
PLATEAU_IMPROVEMENT = 0.01  # under 1% better over the last quarter of the run
COLUMNS = ("training_session_id", "loss_points", "last_step", "last_loss", "smoothed_loss", "min_loss",
           "min_loss_step", "loss_slope_per_100_steps", "is_diverging", "is_plateau", "health")


def ema(values: np.ndarray) -> np.ndarray:
    smoothed = np.empty_like(values)
    level = values[0]
    for index, value in enumerate(values):
        level = level + EMA_ALPHA * (value - level) if math.isfinite(value) else value
        smoothed[index] = level
    return smoothed


def health(steps: np.ndarray, losses: np.ndarray) -> dict:
    """One session's output columns (without its id) from its loss history in step order."""
    smoothed = ema(losses)
    finite = np.isfinite(losses)
    best = int(np.nanargmin(np.where(finite, losses, np.nan))) if finite.any() else 0
    quarter = max(len(losses) // 4, 2)
    recent = slice(len(losses) - quarter, len(losses))
    fit_possible = len(losses) >= MIN_POINTS and finite[recent].all()  # a line needs points to fit
    slope = float(np.polyfit(steps[recent].astype(float), smoothed[recent], 1)[0] * 100) if fit_possible else math.nan
    best_smoothed = float(np.nanmin(np.where(np.isfinite(smoothed), smoothed, np.nan))) if finite.any() else math.nan
    diverging = (not math.isfinite(losses[-1])) or smoothed[-1] > DIVERGENCE_RATIO * best_smoothed
    start = smoothed[len(losses) - quarter]
    improvement = (start - smoothed[-1]) / abs(start) if math.isfinite(start) and start != 0 else math.nan
    plateau = (not diverging) and math.isfinite(improvement) and improvement < PLATEAU_IMPROVEMENT
    if len(losses) < MIN_POINTS:
        verdict = "insufficient_data"
    else:
        verdict = "diverging" if diverging else ("plateau" if plateau else "improving")
    return {
        "loss_points": len(losses), "last_step": int(steps[-1]), "last_loss": float(losses[-1]),
        "smoothed_loss": float(smoothed[-1]), "min_loss": float(losses[best]), "min_loss_step": int(steps[best]),
        "loss_slope_per_100_steps": slope, "is_diverging": bool(diverging and len(losses) >= MIN_POINTS),
        "is_plateau": bool(plateau and len(losses) >= MIN_POINTS), "health": verdict,
    }


def model(dbt, session):
    dbt.config(materialized="table")
    metrics = dbt.ref("training_metrics")
    # Only the loss history, in order, instead of every metric of every run.
    loss = session.sql(
        f"select training_session_id, step, value from {metrics.relation}"
        " where metric_name = 'loss' order by training_session_id, step, recorded_at"
    )
    out: dict[str, list] = {name: [] for name in COLUMNS}
    sessions = loss["training_session_id"]
    if len(sessions) == 0:
        return out
    boundaries = np.flatnonzero(sessions[1:] != sessions[:-1]) + 1
    for rows in np.split(np.arange(len(sessions)), boundaries):
        row = {"training_session_id": sessions[rows[0]],
               **health(loss["step"][rows].astype(np.int64), loss["value"][rows].astype(np.float64))}
        for name in COLUMNS:
            out[name].append(row[name])
    return out
