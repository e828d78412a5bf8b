{#- Every row satisfies `expression` (an invariant); failing rows are returned. -#}
{% test expression_is_true(model, expression) %}

select *
from {{ model }}
where not ({{ expression }})

{% endtest %}
