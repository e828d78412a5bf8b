"""SQL fragments that queries across the library are built from. Every lookup by id or name filters by
the transaction's tenant itself, so it holds for the owner and with row-level security off too."""

from __future__ import annotations

from arc_halo.tenancy import CURRENT_TENANT

# A tensor row readers may see: not part of a parallel upload still in flight (arc_halo.parallel_upload).
VISIBLE = "tensor_metadata.pending_upload_id is null"

# A model of this tenant named by id or by name (its newest registration); two parameters, both the model.
# Every lookup by id or name filters by the transaction's tenant itself, so it holds for the owner and
# with row-level security off too.
MODEL_BY_ID_OR_NAME = f"""(select model_id from models where (model_id::text = %s or model_name = %s)
                          and tenant_id = {CURRENT_TENANT} order by created_at desc limit 1)"""
