{#- Incremental strategy `replace_where`: delete the target rows of the run's date window (on the
    model's meta `date_window_column`), then insert the freshly built rows, in one transaction.
    Unlike `delete+insert` on a key, this also empties a date whose rows all vanished
    upstream, so re-running a window always converges to the upstream state. The window is read
    here, at run time (see date_window.sql): it is not part of the model's parsed config. -#}
{% macro get_incremental_replace_where_sql(arg_dict) -%}
    {%- set column = config.get('meta', {}).get('date_window_column') -%}
    {%- if not column -%}
        {{ exceptions.raise_compiler_error(
            "Incremental strategy replace_where on " ~ arg_dict['target_relation']
            ~ " needs the date column whose window it replaces; set meta={'date_window_column': ...} in the model's config.") }}
    {%- endif -%}
    {%- set dest_cols_csv = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ arg_dict['target_relation'] }}
    where {{ date_window_predicate(column) }};

    insert into {{ arg_dict['target_relation'] }} ({{ dest_cols_csv }})
    select {{ dest_cols_csv }}
    from {{ arg_dict['temp_relation'] }}
{%- endmacro %}
