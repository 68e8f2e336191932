"""Names of the purchase task's hand-built aggregate features (one row per sample), shared by
the task builder (:mod:`seqrec.data.tasks.purchase`) and the baselines that read them."""

BTYPES = ("pv", "cart", "fav")  # non-purchase behaviour types counted in the aggregates
AGG_FEATURES = (
    "n_events", "n_buy_lines", "n_purchases", "n_cat_lines", "n_cat_purchases", "cat_share",
    "quantity", "cat_quantity", "value", "cat_value", "recency", "cat_recency", "cat_first_age",
    "tenure", "gap_mean", "gap_std", "gap_last", "n_products", "n_cates", "cat_recent",
    "last_has_cat", *(f"n_{b}" for b in BTYPES), *(f"cat_{b}" for b in BTYPES),
)
