"""The gas-flow model of the sample plugin, importable on its own so that
tests can compute the expected predictions outside weir."""
import numpy as np
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def gas_flow_truth(t, p, o2):
    """Set point the furnace needs (the synthetic plant)."""
    return 0.05 * t + 2.0 * p - 1.5 * o2 + 0.00002 * t * t


def train():
    """A deterministic scikit-learn model fitted on synthetic plant data."""
    rng = np.random.default_rng(7)
    n = 400
    t = rng.uniform(800, 1300, n)
    p = rng.uniform(0.8, 1.6, n)
    o2 = rng.uniform(1.0, 6.0, n)
    x = np.column_stack([t, p, o2])
    y = gas_flow_truth(t, p, o2)
    return make_pipeline(StandardScaler(), Ridge(alpha=1e-3)).fit(x, y)


MODEL = train()


def predict(rows):
    """Predictions for rows of (temperature, pressure, o2)."""
    return MODEL.predict(np.asarray(rows, dtype=float)).tolist()
