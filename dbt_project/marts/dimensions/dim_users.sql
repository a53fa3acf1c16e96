with

demographics as (
    select * from {{ ref('user_demographics') }}
)

select
    {{ adx.pseudonymise('user_id') }} as user_id,
    age_band,
    gender,
    region,
    split(interests, '\\|') as interests
from demographics
