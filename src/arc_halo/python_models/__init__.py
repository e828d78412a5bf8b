"""Python models: computations where numpy is the better tool than SQL.

Each module here is the body of the dbt node of the same name in models/python/. The node declares the
inputs (ref), the output contract, description and tests; the module defines

    compute(inputs: dict[str, dict[str, numpy.ndarray]]) -> dict[str, numpy.ndarray | list]

taking each input relation as columns and returning the output columns in contract order.
"""
