{#- The optional date window of a run, from vars `start_date` and `end_date` (inclusive ISO
    dates), else from the environment variables FLIGHTOPS_DBT_START_DATE and FLIGHTOPS_DBT_END_DATE
    (how Dagster passes its partitions: a changed --vars makes dbt re-parse the whole project).
    The window is read only when dbt executes, never while it parses: nothing in the parsed project
    depends on it (the models' configs name their window column; `should_full_refresh` and the
    `replace_where` strategy ask for the window at run time), so a new window re-parses no file.
    Both or neither: a run without them rebuilds every date. Returns none, or a dict
    {start, end} of 'YYYY-MM-DD' strings, after checking the values so a typo fails loudly
    instead of silently replacing the wrong days. -#}
{% macro date_window() -%}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set start_value = var('start_date', env_var('FLIGHTOPS_DBT_START_DATE', '') or none) -%}
    {%- set end_value = var('end_date', env_var('FLIGHTOPS_DBT_END_DATE', '') or none) -%}
    {%- if start_value is none and end_value is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if start_value is none or end_value is none -%}
        {{ exceptions.raise_compiler_error(
            "Date window: got start_date=" ~ start_value ~ " and end_date=" ~ end_value
            ~ ". Pass both (e.g. --vars '{start_date: 2013-01-05, end_date: 2013-01-06}') or neither to rebuild every date.") }}
    {%- endif -%}
    {%- set start_date = _parse_iso_date('start_date', start_value) -%}
    {%- set end_date = _parse_iso_date('end_date', end_value) -%}
    {%- if start_date > end_date -%}
        {{ exceptions.raise_compiler_error(
            "Date window: start_date " ~ start_date ~ " is after end_date " ~ end_date
            ~ ". The window is inclusive: pass start_date <= end_date.") }}
    {%- endif -%}
    {{ return({'start': start_date | string, 'end': end_date | string}) }}
{%- endmacro %}


{#- A SQL predicate keeping the rows of `column` inside the run's date window (`true` without one). -#}
{% macro date_window_predicate(column) -%}
    {%- set window = date_window() -%}
    {%- if window is none -%}
        true
    {%- else -%}
        {{ column }} between date '{{ window.start }}' and date '{{ window.end }}'
    {%- endif -%}
{%- endmacro %}


{#- dbt's own `should_full_refresh`, except for a model whose config names a `date_window_column`
    (meta): it is rebuilt whole when the run has no date window (an analyst's plain `dbt build`), and
    replaced window by window (`replace_where`) when it has one, whatever --full-refresh says (a full
    refresh from one window's rows would drop every other date). Decided at run time, so the window
    stays out of parsing. -#}
{% macro should_full_refresh() -%}
    {%- if config.get('meta', {}).get('date_window_column') -%}
        {{ return(date_window() is none) }}
    {%- endif -%}
    {{ return(dbt.should_full_refresh()) }}
{%- endmacro %}


{#- A var value (YAML gives a date object for 2013-01-05, a string for '2013-01-05') as a date. -#}
{% macro _parse_iso_date(name, value) -%}
    {%- set text = value | string | trim -%}
    {%- set match = modules.re.fullmatch('(\\d{4})-(\\d{2})-(\\d{2})', text) -%}
    {%- set problem = "Date window: var " ~ name ~ "=" ~ text ~ " is not a valid date; pass an ISO date YYYY-MM-DD, e.g. 2013-01-05." -%}
    {%- if not match -%}
        {{ exceptions.raise_compiler_error(problem) }}
    {%- endif -%}
    {%- set year, month, day = match.group(1) | int, match.group(2) | int, match.group(3) | int -%}
    {%- if month < 1 or month > 12 or day < 1 -%}
        {{ exceptions.raise_compiler_error(problem) }}
    {%- endif -%}
    {%- set first_of_month = modules.datetime.date(year, month, 1) -%}
    {%- set last_of_month = (first_of_month + modules.datetime.timedelta(days=31)).replace(day=1) - modules.datetime.timedelta(days=1) -%}
    {%- if day > last_of_month.day -%}
        {{ exceptions.raise_compiler_error(problem) }}
    {%- endif -%}
    {{ return(modules.datetime.date(year, month, day)) }}
{%- endmacro %}
