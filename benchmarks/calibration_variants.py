"""Which calibration settings generalise: each variant fitted on one half and scored on the other, both ways.

    python benchmarks/calibration_variants.py PATH/piaf-dev.json --workdir DIR [--splits 10]

First, how often the quoted sentence is right on each half of PIAF and how much that varies from
article to article. Part 1: the settings of `benchmarks/fit_confidence.py`, from those shipped before the two-fold fit
to the shipped ones, one change at a time, and two alternatives. Each variant gets the two-fold
rows `fit_confidence.py` prints (tune → check, check → tune, mean), then the mean over `--splits`
random splits of the articles and of the report's questions into two halves (both ways each: 2 ×
splits folds), with the share of those folds whose PIAF precision of `answer` falls under 0.85 and
whose ECE passes 0.05: the even/odd split is one draw, and its halves differ more than most.

Part 2: the answer model alone, fitted on the questions the shipped one sees, with the shipped gate
and thresholds: logistic regression (shipped), then Platt scaling or isotonic regression fitted on
its out-of-fold scores on the fitting half (5 folds by article, or by question for the report's),
an interaction term, and gradient boosting: ROC AUC, ECE over the PIAF questions shown, `answer`
share and precision at confidence ≥ 0.80, and the precision of the half of the PIAF questions it
is surest of (what `answer` for 0.50 of them would give), per fold.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import fit_confidence as fc  # noqa: E402

from qa.evaluate import Judged, calibration_error  # noqa: E402
from qa.signals import ANSWER_FEATURES  # noqa: E402

OWN = {"answer_sets": "own", "report_weight": 1.0}
STEPS = [
    ("before: the settings fitted on the tune half", fc.BEFORE),
    ("+ answer model on questions asked of their own corpus", dataclasses.replace(fc.BEFORE, **OWN)),
    ("+ «Réponse» at confidence ≥ 0.80", dataclasses.replace(fc.BEFORE, **OWN, precision=None)),
    ("+ gate: in-scope questions answerable", dataclasses.replace(fc.BEFORE, **OWN, precision=None,
                                                                   gate_label="in-scope")),
    ("+ gate: balance rule = shipped", fc.Settings()),
    ("shipped, but the answer model on PIAF questions only", dataclasses.replace(fc.Settings(), answer_sets="piaf")),
    ("shipped, but the precision rule (0.90)", dataclasses.replace(fc.Settings(), precision=0.90)),
    ("shipped, but gate weight 40", dataclasses.replace(fc.Settings(), gate_report_weight=40.0)),
]


def resplit(judged: list[Judged], seed: int) -> list[Judged]:
    """The same questions, split into halves at random: PIAF by article (its questions asked of the
    report follow their article), the report's sets by question."""
    rng = np.random.default_rng(seed)
    piaf = [j for j in judged if j.case.set == "piaf"]
    articles = sorted({j.case.doc for j in piaf})
    tune = set(rng.choice(articles, len(articles) // 2, replace=False))
    halves = {"piaf": ["tune" if j.case.doc in tune else "check" for j in piaf]}
    halves["piaf_on_report"] = halves["piaf"]  # build_cases lists them in the same order
    for name in sorted({j.case.set for j in judged} - set(halves)):
        n = sum(j.case.set == name for j in judged)
        halves[name] = list(rng.permutation(["tune"] * (n // 2) + ["check"] * (n - n // 2)))
    seen = dict.fromkeys(halves, 0)
    out = []
    for j in judged:
        half = halves[j.case.set][seen[j.case.set]]
        seen[j.case.set] += 1
        out.append(dataclasses.replace(j, case=dataclasses.replace(j.case, half=half)))
    return out


def settings_table(judged: list[Judged], splits: int) -> str:
    rows = []
    draws = [resplit(judged, seed) for seed in range(splits)]
    for name, settings in STEPS:
        rows += [(f"{name}: {fold}", values) for fold, values in fc.two_fold(judged, settings)]
        if splits:  # a fold's columns 1 and 3: PIAF precision of `answer`, PIAF ECE
            folds = np.array([values for draw in draws for _, values in fc.two_fold(draw, settings)[:2]])
            rows.append((f"{name}: {2 * splits} random folds (precision < 0.85: {np.mean(folds[:, 1] < 0.85):.2f}, "
                         f"ECE > 0.05: {np.mean(folds[:, 3] > 0.05):.2f})", list(folds.mean(axis=0))))
    return fc.markdown(rows, first="settings: fold")


def answer_models() -> dict:
    """Alternative answer models: fit(x, y, groups) → a function of x (scikit-learn, for this benchmark only)."""
    from sklearn.ensemble import HistGradientBoostingClassifier  # the calibrate extra: lazy
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    def logistic():
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))

    def plain(make):
        return lambda x, y, groups: make().fit(x, y).predict_proba

    def post_hoc(kind):
        def fit(x, y, groups):
            oof = cross_val_predict(logistic(), x, y, groups=groups, cv=GroupKFold(5), method="predict_proba")[:, 1]
            model = logistic().fit(x, y)
            if kind == "platt":
                def logit(p):
                    return np.log(np.clip(p, 1e-6, 1 - 1e-6) / np.clip(1 - p, 1e-6, 1))
                scale = LogisticRegression(C=1e6).fit(logit(oof)[:, None], y)
                return lambda z: scale.predict_proba(logit(model.predict_proba(z)[:, 1])[:, None])
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(oof, y)
            return lambda z: np.column_stack([1 - (p := iso.predict(model.predict_proba(z)[:, 1])), p])
        return fit

    a, b = ANSWER_FEATURES.index("sentence"), ANSWER_FEATURES.index("sentence_coverage")
    interaction = FunctionTransformer(lambda x: np.column_stack([x, x[:, a] * x[:, b]]))
    return {
        "logistic regression (shipped)": plain(logistic),
        "+ Platt scaling": post_hoc("platt"),
        "+ isotonic regression": post_hoc("isotonic"),
        "+ sentence × sentence_coverage": plain(lambda: make_pipeline(interaction, logistic())),
        "gradient boosting (depth 2, 100 trees)": plain(lambda: HistGradientBoostingClassifier(
            max_depth=2, learning_rate=0.05, max_iter=100, min_samples_leaf=60)),
    }


def answer_table(judged: list[Judged]) -> str:
    from sklearn.metrics import roc_auc_score  # the calibrate extra: lazy

    lines = ["| answer model | fold | ROC AUC | PIAF ECE | `answer` ≥ 0.80 | precision "
             "| precision of the surest half |", "|---|---|---|---|---|---|---|"]
    for name, fit in answer_models().items():
        for fitted, scored in fc.FOLDS:
            train = [j for j in judged if j.case.half == fitted and j.case.set != "piaf_on_report"]  # as shipped
            _, gate, thresholds = fc.fit_outcomes([j for j in judged if j.case.half == fitted], fc.Settings())
            test = [j for j in judged if j.case.half == scored and j.case.set == "piaf"]
            x, x_test = (np.array([[j.answer.signals[f] for f in ANSWER_FEATURES] for j in js]) for js in (train, test))
            predict = fit(x, np.array([j.right for j in train]), [j.case.doc or j.case.question for j in train])
            p = predict(x_test)[:, 1]
            y = np.array([j.right for j in test])
            shown = np.array([gate(j.answer.signals) >= thresholds.possible for j in test])
            judged_shown = [dataclasses.replace(j, answer=dataclasses.replace(j.answer, confidence=float(c)))
                            for j, c, s in zip(test, p, shown, strict=True) if s]
            firm = shown & (p >= fc.ANSWER_CONFIDENCE)
            surest = y[np.argsort(-p)[:len(p) // 2]].mean()  # what `answer` for 0.50 of the questions would be
            lines.append(f"| {name} | {fitted} → {scored} | {roc_auc_score(y, p):.3f} | "
                         f"{calibration_error(judged_shown):.3f} | {firm.mean():.3f} | {y[firm].mean():.3f} | "
                         f"{surest:.3f} |")
    return "\n".join(lines)


def base_rates(judged: list[Judged]) -> str:
    """How often the quoted sentence is right, by half and by article: how far apart two halves can be."""
    piaf = [j for j in judged if j.case.set == "piaf"]
    halves = {h: np.mean([j.right for j in piaf if j.case.half == h]) for h in ("tune", "check")}
    by_article = [np.mean([j.right for j in piaf if j.case.doc == doc]) for doc in sorted({j.case.doc for j in piaf})]
    return (f"PIAF, quoted sentence right: tune half {halves['tune']:.3f}, check half {halves['check']:.3f}, "
            f"both {np.mean([j.right for j in piaf]):.3f}; "
            f"by article ({len(by_article)}): mean {np.mean(by_article):.3f}, "
            f"standard deviation {np.std(by_article):.3f}")


def main() -> None:
    parser = fc.question_parser(__doc__)
    parser.add_argument("--splits", type=int, default=10, help="random splits into halves (0: none)")
    args = parser.parse_args()
    judged = fc.judged_questions(args)
    print(base_rates(judged))
    print()
    print(settings_table(judged, args.splits))
    print()
    print(answer_table(judged))


if __name__ == "__main__":
    main()
