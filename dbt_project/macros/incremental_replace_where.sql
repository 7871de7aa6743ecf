{#- Incremental strategy `replace_where`: delete the target rows matching the model's
    `incremental_predicates`, then insert the freshly built rows, in one transaction.
    Unlike `delete+insert` on a key, this also empties a date whose rows all vanished
    upstream, so re-running a window always converges to the upstream state. -#}
{% macro get_incremental_replace_where_sql(arg_dict) -%}
    {%- set predicates = arg_dict['incremental_predicates'] -%}
    {%- if not predicates -%}
        {{ exceptions.raise_compiler_error(
            "Incremental strategy replace_where on " ~ arg_dict['target_relation']
            ~ " needs incremental_predicates (the rows to replace); set them in the model's config.") }}
    {%- endif -%}
    {%- set dest_cols_csv = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ arg_dict['target_relation'] }}
    where {{ predicates | join(' and ') }};

    insert into {{ arg_dict['target_relation'] }} ({{ dest_cols_csv }})
    select {{ dest_cols_csv }}
    from {{ arg_dict['temp_relation'] }}
{%- endmacro %}
