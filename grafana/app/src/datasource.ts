import { CoreApp, DataSourceInstanceSettings, MetricFindValue, ScopedVars } from '@grafana/data';
import { DataSourceWithBackend, getTemplateSrv } from '@grafana/runtime';

import {
  AudiencePreview,
  AudiencePreviewRequest,
  DEFAULT_QUERY,
  LANES,
  NamedEntity,
  TidelineDataSourceOptions,
  TidelineQuery,
  queryTypeInfo,
} from './types';

/** The queries a dashboard variable of this data source can use. */
export const VARIABLE_QUERIES = ['audiences', 'campaigns', 'lanes'] as const;

// Separator used while interpolating multi-value variables. It cannot appear in ids typed by
// users, so splitting on it never cuts an id in two (unlike the 'csv' format would for ids with commas).
const SEP = '\u001f';

function formatMulti(value: unknown): string {
  return Array.isArray(value) ? value.map(String).join(SEP) : String(value ?? '');
}

export class DataSource extends DataSourceWithBackend<TidelineQuery, TidelineDataSourceOptions> {
  constructor(instanceSettings: DataSourceInstanceSettings<TidelineDataSourceOptions>) {
    super(instanceSettings);
  }

  getDefaultQuery(_: CoreApp): Partial<TidelineQuery> {
    return DEFAULT_QUERY;
  }

  applyTemplateVariables(query: TidelineQuery, scopedVars: ScopedVars): TidelineQuery {
    return {
      ...query,
      audiences: this.interpolateList(query.audiences, scopedVars),
      campaigns: this.interpolateList(query.campaigns, scopedVars),
      lanes: this.interpolateList(query.lanes, scopedVars),
    };
  }

  filterQuery(query: TidelineQuery): boolean {
    // A query without a (known) type has nothing to run: e.g. a row added before the editor set the default.
    return queryTypeInfo(query.queryType) !== undefined;
  }

  /** Audiences known to the backend (resource `GET audiences`). */
  getAudiences(): Promise<NamedEntity[]> {
    return this.getResource<NamedEntity[]>('audiences');
  }

  /** Campaigns known to the backend (resource `GET campaigns`). */
  getCampaigns(): Promise<NamedEntity[]> {
    return this.getResource<NamedEntity[]>('campaigns');
  }

  /**
   * What applying an audience definition would do now (resource `POST audience-preview`): size,
   * members, entries by lane, and each campaign's sends and skips. Nothing is written.
   */
  previewAudience(definition: string, sample = 10): Promise<AudiencePreview> {
    const body: AudiencePreviewRequest = { definition, sample };
    return this.postResource<AudiencePreview>('audience-preview', body);
  }

  /**
   * Values of a dashboard variable: `audiences` or `campaigns` (the active ones, shown by name,
   * valued by id) or `lanes`.
   */
  async metricFindQuery(query: string | { query?: string }): Promise<MetricFindValue[]> {
    const q = (typeof query === 'string' ? query : (query?.query ?? '')).trim();
    const entities = (list: NamedEntity[]) => (list ?? []).map((e) => ({ text: e.name || e.id, value: e.id }));
    switch (q) {
      case 'audiences':
        return entities(await this.getAudiences());
      case 'campaigns':
        return entities(await this.getCampaigns());
      case 'lanes':
        return LANES.map((lane) => ({ text: lane, value: lane }));
    }
    throw new Error(`unknown variable query "${q}": use one of ${VARIABLE_QUERIES.join(', ')}`);
  }

  /** Dashboard variables, as `$name`, so that the pickers can offer them. */
  getVariables(): string[] {
    return getTemplateSrv()
      .getVariables()
      .map((v) => `$${v.name}`);
  }

  /**
   * Interpolates every entry; a multi-value (or "All") variable expands into one entry per value.
   * Empty results are dropped and duplicates removed, keeping the first occurrence's order.
   */
  private interpolateList(values: string[] | undefined, scopedVars: ScopedVars): string[] | undefined {
    if (!values) {
      return values;
    }
    const templateSrv = getTemplateSrv();
    const out: string[] = [];
    for (const value of values) {
      for (const part of templateSrv.replace(value, scopedVars, formatMulti).split(SEP)) {
        const v = part.trim();
        if (v !== '' && !out.includes(v)) {
          out.push(v);
        }
      }
    }
    return out;
  }
}
