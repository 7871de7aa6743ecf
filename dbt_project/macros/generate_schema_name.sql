{#- Use a model's custom schema as-is (`staging`, not `main_staging`): the warehouse has one
    audience, and analysts and the Python assets query fixed schema names. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
