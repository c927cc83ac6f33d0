"""DynamoDB tables made from the contract's schemas, for tests that build their own AWS (moto)."""

from __future__ import annotations

from typing import Any

from datacarousel.contract import TableSchema


def create_table(ddb: Any, schema: TableSchema) -> str:
    """Create `schema`'s table (its indexes projecting everything) with `ddb`; returns its name."""
    key = [{"AttributeName": schema.hash_key.name, "KeyType": "HASH"}]
    if schema.range_key is not None:
        key.append({"AttributeName": schema.range_key.name, "KeyType": "RANGE"})
    params: dict[str, Any] = {
        "TableName": schema.table_name,
        "KeySchema": key,
        "AttributeDefinitions": [
            {"AttributeName": n, "AttributeType": t} for n, t in schema.attribute_definitions().items()
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if schema.indexes:
        params["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": index.hash_key.name, "KeyType": "HASH"},
                    *([{"AttributeName": index.range_key.name, "KeyType": "RANGE"}] if index.range_key else []),
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index in schema.indexes
        ]
    ddb.create_table(**params)
    return schema.table_name
