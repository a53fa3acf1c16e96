with

demographics as (
    select * from {{ ref('user_demographics') }}
)

select
    user_id,
    age_band,
    gender,
    region,
    split(interests, '\\|') as interests
from demographics
