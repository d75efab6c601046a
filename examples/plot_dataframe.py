"""
===========================================
A pandas DataFrame with categorical columns
===========================================

Real tables mix numbers and categories, have missing values and string
labels. A neural network needs numbers, on similar scales, and no missing
values. scikit-learn's :class:`~sklearn.compose.ColumnTransformer` prepares
each kind of column its own way, and a :class:`~sklearn.pipeline.Pipeline`
puts it in front of :class:`~skdnn.DNNClassifier`, which takes the labels as
they are and gives them back from ``predict``.
"""

# %%
# A table of customers
# --------------------
# A made-up table: each row a customer of a subscription service, with three
# numeric and two categorical columns, and what the customer did next:
# ``"stay"``, ``"upgrade"`` or ``"cancel"``. The labels are drawn from
# probabilities that depend on the columns, so no model can predict them all.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import ConfusionMatrixDisplay
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from skdnn import DNNClassifier

rng = np.random.default_rng(0)
n = 2_000
customers = pd.DataFrame(
    {
        "age": rng.integers(18, 80, n),
        "income": rng.lognormal(np.log(40_000), 0.5, n).round(-2),
        "visits_per_month": rng.poisson(6, n),
        "plan": rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2]),
        "region": rng.choice(["north", "south", "east", "west"], n),
    }
)
# Some incomes are unknown.
customers.loc[rng.random(n) < 0.05, "income"] = np.nan

# The scores of "upgrade" and "cancel" relative to "stay".
income = np.log(customers["income"].fillna(40_000) / 40_000)
visits = (customers["visits_per_month"] - 6) / 2.5
plan = customers["plan"].map({"basic": 0, "plus": 1, "pro": 2})
upgrade = 1.5 * visits + 2.0 * income - 1.2 * plan - 0.5
cancel = (
    -1.5 * visits
    + 1.0 * (plan == 2) * (income < 0)
    - 0.03 * (customers["age"] - 45)
    + 0.8 * (customers["region"] == "south")
    - 1.0
)
logits = np.column_stack([np.zeros(n), upgrade, cancel])
proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
labels = np.array(["stay", "upgrade", "cancel"])
next_step = labels[(rng.random(n)[:, None] > proba.cumsum(axis=1)).sum(axis=1)]

X_train, X_test, y_train, y_test = train_test_split(
    customers, next_step, test_size=0.25, stratify=next_step, random_state=0
)
customers.head()

# %%
pd.Series(next_step).value_counts()

# %%
# The pipeline
# ------------
# Numeric columns: missing values replaced by the column's median, then
# standardised. Categorical columns: one 0/1 column per category. The
# ColumnTransformer's pandas output keeps the column names, so the network
# sees, and records in ``feature_names_in_``, what each input is.
numeric = ["age", "income", "visits_per_month"]
categorical = ["plan", "region"]
preprocess = ColumnTransformer(
    [
        (
            "num",
            make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
            numeric,
        ),
        (
            "cat",
            OneHotEncoder(handle_unknown="ignore", sparse_output=False),
            categorical,
        ),
    ]
).set_output(transform="pandas")

model = make_pipeline(
    preprocess,
    DNNClassifier(
        hidden_layer_sizes=(32, 16),
        dropout=0.2,
        early_stopping=True,
        random_state=0,
    ),
)
model.fit(X_train, y_train)

# %%
network = model[-1]
print(f"classes: {network.classes_}")
print(f"{network.n_features_in_} inputs:")
print(network.feature_names_in_)
print(f"stopped after {network.n_iter_} epochs")

# %%
# Predictions
# -----------
# ``predict`` returns the labels as strings, ``predict_proba`` one column per
# class in the order of ``classes_``.
# The best any model can do is to predict, for each customer, the label the
# table's own probabilities make most likely.
best_possible = np.mean(labels[proba[X_test.index].argmax(axis=1)] == y_test)
print(f"test accuracy: {model.score(X_test, y_test):.3f}")
print(f"best possible test accuracy: {best_possible:.3f}")
predicted = X_test.head().assign(
    next_step=y_test[:5],
    predicted=model.predict(X_test.head()),
)
pd.concat(
    [
        predicted,
        pd.DataFrame(
            model.predict_proba(X_test.head()),
            index=predicted.index,
            columns=[f"P({c})" for c in network.classes_],
        ).round(2),
    ],
    axis=1,
)

# %%
ConfusionMatrixDisplay.from_estimator(model, X_test, y_test, cmap="Blues")
plt.title("What the network predicts for the test customers")
