-- A staging model that the segql models read instead of the raw table ([dbt.tables] in
-- segql.toml maps subscriptions to it): whatever cleaning the project does happens here.
select person_id, status, plan, mrr, created_at
from {{ source('billing', 'subscriptions') }}
