import React, { useEffect, useMemo, useState } from 'react';
import { QueryEditorProps } from '@grafana/data';
import { Button, Combobox, ComboboxOption, InlineField, MultiCombobox, Stack } from '@grafana/ui';

import { DataSource } from '../datasource';
import { AudiencePreview } from './AudiencePreview';
import {
  DEFAULT_METRIC,
  DEFAULT_QUERY_TYPE,
  LANES,
  METRICS,
  Metric,
  NamedEntity,
  QUERY_TYPES,
  QueryType,
  TidelineDataSourceOptions,
  TidelineQuery,
  metricInfo,
  queryTypeInfo,
} from '../types';

type Props = QueryEditorProps<DataSource, TidelineQuery, TidelineDataSourceOptions>;

const LABEL_WIDTH = 14;
const PICKER_WIDTH = 60;

const QUERY_TYPE_OPTIONS: Array<ComboboxOption<QueryType>> = QUERY_TYPES.map(({ value, label, description }) => ({
  value,
  label,
  description,
}));

const METRIC_OPTIONS: Array<ComboboxOption<Metric>> = METRICS.map(({ value, label, description }) => ({
  value,
  label,
  description,
}));

const LANE_OPTIONS: Array<ComboboxOption<string>> = LANES.map((lane) => ({ value: lane, label: lane }));

interface Loaded {
  options: Array<ComboboxOption<string>>;
  loading: boolean;
  error?: string;
}

/** Loads the entities of a backend resource once per mount, as picker options (label = name, value = id). */
function useEntityOptions(load: () => Promise<NamedEntity[]>): Loaded {
  const [state, setState] = useState<Loaded>({ options: [], loading: true });
  useEffect(() => {
    let cancelled = false;
    load().then(
      (entities) => {
        if (!cancelled) {
          const options = (entities ?? []).map((e) => ({ value: e.id, label: e.name || e.id, description: e.id }));
          setState({ options, loading: false });
        }
      },
      (err: unknown) => {
        if (!cancelled) {
          setState({ options: [], loading: false, error: errorMessage(err) });
        }
      }
    );
    return () => {
      cancelled = true;
    };
    // `load` is a bound method of the data source: reload only when the data source changes.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  return state;
}

function errorMessage(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { data?: { message?: string }; message?: string; statusText?: string };
    return e.data?.message ?? e.message ?? e.statusText ?? 'request failed';
  }
  return String(err);
}

interface MultiPickerProps {
  id: string;
  label: string;
  tooltip: string;
  placeholder: string;
  options: Array<ComboboxOption<string>>;
  variables: string[];
  value: string[] | undefined;
  loading?: boolean;
  error?: string;
  onChange: (values: string[]) => void;
}

function MultiPicker(props: MultiPickerProps) {
  const { id, label, tooltip, placeholder, options, variables, value, loading, error, onChange } = props;

  // Dashboard variables come first, then the backend's entities.
  const allOptions = useMemo(
    () => [...variables.map((v) => ({ value: v, label: v, group: 'Variables' })), ...options],
    [variables, options]
  );

  // Pass options (not bare ids) as value so that ids unknown to the list (a deleted audience, a
  // variable of another dashboard) stay visible and removable.
  const selected = (value ?? []).map((v) => allOptions.find((o) => o.value === v) ?? { value: v, label: v });

  return (
    <InlineField label={label} labelWidth={LABEL_WIDTH} tooltip={tooltip} invalid={!!error} error={error}>
      <MultiCombobox<string>
        id={id}
        width={PICKER_WIDTH}
        placeholder={placeholder}
        options={allOptions}
        value={selected}
        loading={loading}
        createCustomValue
        isClearable
        onChange={(opts) => onChange(opts.map((o) => o.value))}
      />
    </InlineField>
  );
}

function AudiencePicker({ datasource, ...rest }: PickerWrapperProps) {
  const { options, loading, error } = useEntityOptions(() => datasource.getAudiences());
  return (
    <MultiPicker
      id="tideline-query-audiences"
      label="Audiences"
      tooltip="Audiences to query. Dashboard variables (multi-value too) are expanded."
      placeholder="Choose audiences"
      options={options}
      loading={loading}
      error={error && `Could not load audiences: ${error}`}
      {...rest}
    />
  );
}

function CampaignPicker({ datasource, ...rest }: PickerWrapperProps) {
  const { options, loading, error } = useEntityOptions(() => datasource.getCampaigns());
  return (
    <MultiPicker
      id="tideline-query-campaigns"
      label="Campaigns"
      tooltip="Campaigns to query. Dashboard variables (multi-value too) are expanded."
      placeholder="Choose campaigns"
      options={options}
      loading={loading}
      error={error && `Could not load campaigns: ${error}`}
      {...rest}
    />
  );
}

interface PickerWrapperProps {
  datasource: DataSource;
  variables: string[];
  value: string[] | undefined;
  onChange: (values: string[]) => void;
}

export function QueryEditor({ query, onChange, onRunQuery, datasource }: Props) {
  const queryType = query.queryType ?? DEFAULT_QUERY_TYPE;
  const info = queryTypeInfo(queryType);
  const metric = query.metric ?? DEFAULT_METRIC;
  // An alert metric's filters are the metric's own (lanes, campaigns or audiences).
  const filters = info?.metric ? metricInfo(metric) : info;

  const variables = useMemo(() => {
    try {
      return datasource.getVariables();
    } catch {
      return [];
    }
  }, [datasource]);

  // A query saved without a type (or added without getDefaultQuery) shows the default type: store it,
  // so that what the editor shows is what runs (filterQuery drops queries without a type).
  useEffect(() => {
    if (query.queryType === undefined) {
      onChange({ ...query, queryType: DEFAULT_QUERY_TYPE });
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [query.queryType]);

  const [previewOpen, setPreviewOpen] = useState(false);

  const update = (patch: Partial<TidelineQuery>) => {
    const next: TidelineQuery = { ...query, queryType, ...patch };
    if (queryTypeInfo(next.queryType)?.metric && next.metric === undefined) {
      // Store the metric the editor shows, so that what it shows is what runs.
      next.metric = DEFAULT_METRIC;
    }
    onChange(next);
    onRunQuery();
  };

  return (
    <Stack direction="column" gap={0}>
      <InlineField label="Query type" labelWidth={LABEL_WIDTH} tooltip={info?.description}>
        <Combobox<QueryType>
          id="tideline-query-type"
          width={PICKER_WIDTH}
          options={QUERY_TYPE_OPTIONS}
          value={queryType}
          onChange={(opt) => update({ queryType: opt.value })}
        />
      </InlineField>

      {info?.metric && (
        <InlineField label="Metric" labelWidth={LABEL_WIDTH} tooltip={metricInfo(metric)?.description}>
          <Combobox<Metric>
            id="tideline-query-metric"
            width={PICKER_WIDTH}
            options={METRIC_OPTIONS}
            value={metric}
            onChange={(opt) => update({ metric: opt.value })}
          />
        </InlineField>
      )}

      {filters?.audiences && (
        <AudiencePicker
          datasource={datasource}
          variables={variables}
          value={query.audiences}
          onChange={(audiences) => update({ audiences })}
        />
      )}

      {filters?.campaigns && (
        <CampaignPicker
          datasource={datasource}
          variables={variables}
          value={query.campaigns}
          onChange={(campaigns) => update({ campaigns })}
        />
      )}

      {filters?.lanes && (
        <MultiPicker
          id="tideline-query-lanes"
          label="Lanes"
          tooltip="Ingestion lanes to query (web, server, backfill)."
          placeholder="Choose lanes"
          options={LANE_OPTIONS}
          variables={variables}
          value={query.lanes}
          onChange={(lanes) => update({ lanes })}
        />
      )}

      <div>
        <Button
          variant="secondary"
          fill="text"
          size="sm"
          icon={previewOpen ? 'angle-down' : 'angle-right'}
          onClick={() => setPreviewOpen(!previewOpen)}
        >
          Preview an audience before applying it
        </Button>
      </div>
      {previewOpen && <AudiencePreview datasource={datasource} />}
    </Stack>
  );
}
