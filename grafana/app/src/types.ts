import { DataSourceJsonData } from '@grafana/data';
import { DataQuery } from '@grafana/schema';

/**
 * Query types served by the tideline backend (package github.com/tideline-dev/tideline/grafana).
 * The string values are the wire format: keep them in sync with the Go side.
 */
export type QueryType =
  | 'audience_size'
  | 'transitions'
  | 'qualification_latency'
  | 'campaign_outcomes'
  | 'pipeline_lag'
  | 'backfill_runs'
  | 'live_qualifications'
  | 'audience_completeness';

/** Ingestion lanes an event can arrive through. */
export type Lane = 'web' | 'server' | 'backfill';

export const LANES: Lane[] = ['web', 'server', 'backfill'];

export interface TidelineQuery extends DataQuery {
  refId: string;
  queryType: QueryType;
  /** Audience ids (or template variables such as `$audience` before interpolation). */
  audiences?: string[];
  /** Campaign ids (or template variables before interpolation). */
  campaigns?: string[];
  /** Lanes (web/server/backfill, or template variables before interpolation). */
  lanes?: string[];
}

export const DEFAULT_QUERY_TYPE: QueryType = 'audience_size';

export const DEFAULT_QUERY: Partial<TidelineQuery> = {
  queryType: DEFAULT_QUERY_TYPE,
};

/** Per-instance settings (jsonData), visible to the frontend. */
export interface TidelineDataSourceOptions extends DataSourceJsonData {
  host: string;
  port: number;
  user: string;
  database: string;
  tlsSkipVerify?: boolean;
}

export const DEFAULT_SETTINGS: TidelineDataSourceOptions = {
  host: '127.0.0.1',
  port: 9000,
  user: 'grafana',
  database: 'tideline',
};

/** Encrypted settings: sent to the backend, never returned to the frontend. */
export interface TidelineSecureJsonData {
  password?: string;
}

/** Item returned by the `audiences` and `campaigns` resources. */
export interface NamedEntity {
  id: string;
  name: string;
}

export interface QueryTypeInfo {
  value: QueryType;
  label: string;
  description: string;
  /** Which filters apply to this query type. */
  audiences?: boolean;
  campaigns?: boolean;
  lanes?: boolean;
}

export const QUERY_TYPES: QueryTypeInfo[] = [
  {
    value: 'audience_size',
    label: 'Audience size',
    description: 'Number of qualified members per audience over time',
    audiences: true,
  },
  {
    value: 'transitions',
    label: 'Transitions',
    description: 'Members entering and leaving audiences over time',
    audiences: true,
  },
  {
    value: 'qualification_latency',
    label: 'Qualification latency',
    description: 'Time from event to audience qualification, per ingestion lane',
    lanes: true,
  },
  {
    value: 'campaign_outcomes',
    label: 'Campaign outcomes',
    description: 'Outcomes (sends, conversions, …) per campaign',
    campaigns: true,
  },
  {
    value: 'pipeline_lag',
    label: 'Pipeline lag',
    description: 'Kafka to ClickHouse ingestion lag, per lane',
    lanes: true,
  },
  {
    value: 'backfill_runs',
    label: 'Backfill runs',
    description: 'Backfill runs with their status, progress and duration',
  },
  {
    value: 'live_qualifications',
    label: 'Live qualifications',
    description: 'Streams qualifications as they happen (live)',
    audiences: true,
  },
  {
    value: 'audience_completeness',
    label: 'Audience completeness',
    description: 'Per audience, the time it is complete to and the lane holding it back',
    audiences: true,
  },
];

export function queryTypeInfo(queryType: string | undefined): QueryTypeInfo | undefined {
  return QUERY_TYPES.find((t) => t.value === queryType);
}
