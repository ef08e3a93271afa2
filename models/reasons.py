"""Likely rejection reason: a multiclass model over leads sales rejected, by reason code.

Returned beside the score ("likely rejection: no_budget, 41%") so a rep knows what to qualify first,
and marketing sees which sources attract which objections. It shares the conversion model's encoded
feature frame, so there is no second feature path. The API and batch output keep the code (a CRM
writes it back); people read it in words (`reason_in_words`: the score card, the audit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.gbm import predict_threads

# Few, shallow trees: every scored lead pays one tree per class per round, and on held-out rejected
# leads (100k synthetic CRM) learning rate 0.2 with 7 leaves ranked reasons as well as 0.05 with
# 15 leaves (top-1 0.543 vs 0.539, log loss 1.108 vs 1.110) at a sixth of the predict cost.
LEARNING_RATE = 0.2
NUM_LEAVES = 7
MAX_ROUNDS = 500  # with a validation set (early stopping decides)
ROUNDS_WITHOUT_VALIDATION = 40
# The model keeps the fewest rounds whose validation log loss is within this of the best. On 1M
# synthetic leads (the make-bench CRM) the best was 92 rounds; 40 were within 0.001 (held-out top-1
# 0.545 vs 0.545, log loss 1.0989 vs 1.0979) and cost 2.4x less to predict for every scored lead.
LOG_LOSS_TOLERANCE = 0.001


def reason_in_words(code: str, spellings: Mapping[str, str]) -> str:
    """A rejection reason code as people read it: as the export spells it (`CRMData.export_spellings("reason")`: "Ringing",
    "Interested in other courses"), a code as words ("not_decision_maker" -> "Not decision maker"; one
    sent to the service's feedback too). An export's own lower-case text with spaces, "switched off", is kept; a
    lower-case code the export does not spell (a model saved before it kept spellings, a score logged by an earlier
    version) reads as a sentence, "Lost to eins", not "lost to eins"."""
    text = spellings.get(code, code)
    if text != text.lower() or (code in spellings and " " in text):
        return text
    return text.replace("_", " ").capitalize()


def _learnable_codes(reasons: pd.Series, min_rows: int) -> list[str]:
    """Reason codes with enough rejected leads to learn (a tenth of min_rows, at least 5)."""
    counts = reasons.value_counts()
    return sorted(counts.index[counts >= max(5, min_rows // 10)])


def shortfall(reasons: pd.Series, min_rows: int) -> str | None:
    """Why no reason model can be fit on these rejected leads' reason codes (NaN: none); None when one can.

    Said by `leadscore train`, so a missing "likely rejection reason" is not a silent surprise.
    """
    coded = int(reasons.notna().sum())
    if coded < min_rows:
        return f"{coded:,} rejected leads with a reason code to learn from, fewer than model.reason_min_rows ({min_rows})"
    codes = _learnable_codes(reasons, min_rows)
    if len(codes) < 2:
        counts = ", ".join(f"{code} ({n:,})" for code, n in reasons.value_counts().head(3).items())
        return (f"it needs two reason codes with at least {max(5, min_rows // 10)} rejected leads each, and the "
                f"training leads have {counts}")
    return None


@dataclass
class ReasonModel:
    classes: list[str]
    booster: lgb.Booster
    # Each class as the training export spelled it (`CRMData.export_spellings("reason")`), for `reason_in_words` where no export
    # is at hand (the score card). None: none known, also what a model pickled before this field reads.
    spellings: dict[str, str] | None = None

    @classmethod
    def fit(
        cls,
        X: pd.DataFrame,
        reasons: pd.Series,
        X_val: pd.DataFrame | None,
        reasons_val: pd.Series | None,
        *,
        seed: int,
        min_rows: int,
        spellings: Mapping[str, str] | None = None,
        rounds: int = ROUNDS_WITHOUT_VALIDATION,
    ) -> "ReasonModel | None":
        """Fit on rejected leads with a reason code; None when there is too little to learn from (`shortfall`).

        ``spellings``: the export's spelling of each code (`CRMData.export_spellings("reason")`), kept for the classes.
        The rounds are chosen on the validation rows (``X_val``, ``reasons_val``); without them (None, or
        fewer than 10 with a learnable code) ``rounds`` are boosted: cross-validated fitting passes those a
        fold model kept, to refit on every row.
        """
        if shortfall(reasons, min_rows):
            return None
        classes = _learnable_codes(reasons, min_rows)
        kept = {c: spellings[c] for c in classes if c in spellings} if spellings else None
        code = {c: i for i, c in enumerate(classes)}
        train_mask = reasons.isin(classes).to_numpy()
        val_mask = reasons_val.isin(classes).to_numpy() if reasons_val is not None else np.zeros(0, dtype=bool)
        params = {
            "objective": "multiclass",
            "num_class": len(classes),
            "learning_rate": LEARNING_RATE,
            "num_leaves": NUM_LEAVES,
            "min_data_in_leaf": max(20, int(train_mask.sum()) // 500),
            "lambda_l2": 5.0,
            "feature_fraction": 0.8,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "max_cat_to_onehot": 4,
            "cat_l2": 10.0,
            "seed": seed,
            "deterministic": True,
            "force_col_wise": True,
            "verbosity": -1,
        }
        train_set = lgb.Dataset(X[train_mask], reasons[train_mask].map(code).to_numpy())
        if val_mask.sum() < 10:
            return cls(classes=classes, booster=lgb.train(params, train_set, num_boost_round=rounds),
                       spellings=kept)
        valid_set = lgb.Dataset(X_val[val_mask], reasons_val[val_mask].map(code).to_numpy(), reference=train_set)
        history: dict = {}
        booster = lgb.train(
            params, train_set, num_boost_round=MAX_ROUNDS, valid_sets=[valid_set], valid_names=["validation"],
            callbacks=[lgb.early_stopping(50, verbose=False), lgb.record_evaluation(history)],
        )
        loss = np.asarray(history["validation"]["multi_logloss"])
        rounds = int(np.flatnonzero(loss <= loss.min() + LOG_LOSS_TOLERANCE)[0]) + 1
        return cls(classes=classes, booster=lgb.Booster(model_str=booster.model_to_string(num_iteration=rounds)),
                   spellings=kept)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        if len(X) == 0:
            return np.zeros((0, len(self.classes)))
        return self.booster.predict(X, num_threads=predict_threads(len(X)))

    def most_likely(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The most likely reason per lead, as the CRM spells it ("Ringing", not the lower-cased code the model
        compares: what it writes back), and its probability given rejection."""
        proba = self.predict_proba(X)
        best = proba.argmax(axis=1) if len(proba) else np.zeros(0, dtype=int)
        spelled = [(self.spellings or {}).get(code, code) for code in self.classes]
        return np.asarray(spelled, dtype=object)[best], proba[np.arange(len(proba)), best]
