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
  | 'audience_completeness'
  | 'alert_metric'
  | 'late_events'
  | 'ingest_delay';

/** What an `alert_metric` query measures: one number per lane, campaign or audience. */
export type Metric =
  | 'watermark_age_ms'
  | 'consumer_lag'
  | 'dead_letter_rate'
  | 'delivery_failures'
  | 'delivery_dead_letters'
  | 'evaluator_lag_ms'
  | 'audience_held_back_ms';

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
  /** What an `alert_metric` query measures. */
  metric?: Metric;
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
  /** Connect with TLS; a CA or client certificate implies it. */
  secure?: boolean;
  tlsSkipVerify?: boolean;
  /** Name the server's certificate must carry (default: the host). */
  tlsServerName?: string;
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
  /** PEM of the authorities to trust (default: the system's roots). */
  tlsCACert?: string;
  /** PEM client certificate and key, for a server that requires one (mutual TLS). */
  tlsClientCert?: string;
  tlsClientKey?: string;
}

/** The secure fields holding PEM text. */
export type SecretPEMKey = 'tlsCACert' | 'tlsClientCert' | 'tlsClientKey';

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
  /** Whether the query measures a metric (alert_metric), whose filters then apply. */
  metric?: boolean;
}

export interface MetricInfo {
  value: Metric;
  label: string;
  description: string;
  audiences?: boolean;
  campaigns?: boolean;
  lanes?: boolean;
}

export const DEFAULT_METRIC: Metric = 'watermark_age_ms';

export const METRICS: MetricInfo[] = [
  {
    value: 'watermark_age_ms',
    label: 'Watermark age',
    description: 'Per lane, how far behind now its watermark is (ms): a stalled lane grows',
    lanes: true,
  },
  {
    value: 'consumer_lag',
    label: 'Consumer lag',
    description: 'Per lane, records in Kafka the loader has not committed',
    lanes: true,
  },
  {
    value: 'dead_letter_rate',
    label: 'Dead-letter rate',
    description: 'Per lane, records dead-lettered per minute over the time range',
    lanes: true,
  },
  {
    value: 'delivery_failures',
    label: 'Delivery failures',
    description: 'Per campaign, fires whose delivery failed, died or met a disabled endpoint',
    campaigns: true,
  },
  {
    value: 'delivery_dead_letters',
    label: 'Delivery dead letters',
    description: 'Per campaign, deliveries given up and not redelivered',
    campaigns: true,
  },
  {
    value: 'evaluator_lag_ms',
    label: 'Evaluator lag',
    description: 'Per audience, how far behind now the time it is complete to is (ms)',
    audiences: true,
  },
  {
    value: 'audience_held_back_ms',
    label: 'Audience held back',
    description: 'Per audience, how far its slowest lane holds it behind the freshest (ms)',
    audiences: true,
  },
];

export function metricInfo(metric: string | undefined): MetricInfo | undefined {
  return METRICS.find((m) => m.value === metric);
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
  {
    value: 'late_events',
    label: 'Late events',
    description: 'Events per lateness class (receipt minus event time), per lane',
    lanes: true,
  },
  {
    value: 'ingest_delay',
    label: 'Ingest delay',
    description: 'Collector to ClickHouse delay per lane over time (p50/p95/p99, max)',
    lanes: true,
  },
  {
    value: 'alert_metric',
    label: 'Alert metric',
    description: 'One number per lane, campaign or audience, for alert rules',
    metric: true,
  },
];

export function queryTypeInfo(queryType: string | undefined): QueryTypeInfo | undefined {
  return QUERY_TYPES.find((t) => t.value === queryType);
}

/** Body of the `audience-preview` resource (AudiencePreviewRequest in grafana/plugin/preview.go). */
export interface AudiencePreviewRequest {
  /** One audience definition, YAML as in the audiences folder. */
  definition: string;
  /** How many entering customers to describe (default 10, at most 100). */
  sample?: number;
}

/** A transition the evaluator's pass after apply would write. */
export interface PreviewChange {
  customer_id: string;
  kind: 'entered' | 'exited';
  episode: number;
  event_time_ms: number;
  ingest_time_ms: number;
  message_id?: string;
  lane?: string;
}

/** An entering customer with what qualifies them. */
export interface PreviewMember extends PreviewChange {
  attributes: Record<string, string>;
  features: Record<string, string>;
  event?: string;
}

/** What the poller would do with one campaign's qualifications now. */
export interface CampaignImpact {
  campaign_id: string;
  trigger: string;
  qualifications: number;
  sends: number;
  late: number;
  deferred: number;
  skipped: Record<string, number>;
  waiting: number;
  already_decided: number;
}

/** Answer of the `audience-preview` resource (`tideline audiences preview --json`). */
export interface AudiencePreview {
  audience_id: string;
  name?: string;
  version: string;
  applied: boolean;
  changed: boolean;
  direction: string;
  lanes: string[];
  held_by?: string;
  as_of_ms: number;
  complete_ms: number;
  evaluated: number;
  size: number;
  entered: number;
  exited: number;
  by_lane: Record<string, number>;
  changes: PreviewChange[];
  sample: PreviewMember[];
  from_events?: string[];
  campaigns: CampaignImpact[];
  sends: number;
  campaigns_not_previewed?: string[];
}
