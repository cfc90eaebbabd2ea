import { DataSourceInstanceSettings, ScopedVars } from '@grafana/data';
import { setTemplateSrv, TemplateSrv } from '@grafana/runtime';

import { DataSource } from './datasource';
import { TidelineDataSourceOptions, TidelineQuery } from './types';

// A minimal TemplateSrv: `$name` / `${name}` are replaced by the variable's value; multi-value
// variables are passed to the format function as arrays, like Grafana's TemplateSrv does.
const variables: Record<string, string | string[]> = {
  audience: ['aud-1', 'aud-2'],
  campaign: 'camp-9',
  lane: ['web', 'backfill'],
  empty: [],
};

const templateSrv: TemplateSrv = {
  getVariables: () => Object.keys(variables).map((name) => ({ name }) as never),
  containsTemplate: (target?: string) => !!target && target.includes('$'),
  updateTimeRange: () => {},
  replace: (target?: string, scopedVars?: ScopedVars, format?: string | Function) =>
    (target ?? '').replace(/\$\{?(\w+)\}?/g, (match, name: string) => {
      const value = scopedVars?.[name]?.value ?? variables[name];
      if (value === undefined) {
        return match;
      }
      if (typeof format === 'function') {
        return format(value);
      }
      return Array.isArray(value) ? value.join(',') : String(value);
    }),
};

function newDataSource() {
  return new DataSource({
    id: 1,
    uid: 'tideline-uid',
    type: 'tideline-audience-datasource',
    name: 'tideline',
    jsonData: { host: '127.0.0.1', port: 9000, user: 'grafana', database: 'tideline' },
    meta: {},
    readOnly: false,
    access: 'proxy',
  } as unknown as DataSourceInstanceSettings<TidelineDataSourceOptions>);
}

describe('DataSource.applyTemplateVariables', () => {
  beforeAll(() => setTemplateSrv(templateSrv));

  it('expands multi-value variables into arrays', () => {
    const query: TidelineQuery = {
      refId: 'A',
      queryType: 'audience_size',
      audiences: ['$audience'],
      campaigns: ['${campaign}'],
      lanes: ['$lane'],
    };
    const out = newDataSource().applyTemplateVariables(query, {});
    expect(out.audiences).toEqual(['aud-1', 'aud-2']);
    expect(out.campaigns).toEqual(['camp-9']);
    expect(out.lanes).toEqual(['web', 'backfill']);
    expect(out.refId).toBe('A');
    expect(out.queryType).toBe('audience_size');
  });

  it('mixes literal ids and variables, drops empties and duplicates', () => {
    const query: TidelineQuery = {
      refId: 'A',
      queryType: 'transitions',
      audiences: ['aud-0', '$audience', 'aud-1', '$empty', ''],
    };
    const out = newDataSource().applyTemplateVariables(query, {});
    expect(out.audiences).toEqual(['aud-0', 'aud-1', 'aud-2']);
  });

  it('keeps ids containing commas whole', () => {
    const query: TidelineQuery = { refId: 'A', queryType: 'campaign_outcomes', campaigns: ['$campaign'] };
    const scoped: ScopedVars = { campaign: { text: 'x', value: ['spring, 2025', 'fall'] } };
    expect(newDataSource().applyTemplateVariables(query, scoped).campaigns).toEqual(['spring, 2025', 'fall']);
  });

  it('prefers scoped variables (repeated panels) over dashboard values', () => {
    const query: TidelineQuery = { refId: 'A', queryType: 'audience_size', audiences: ['$audience'] };
    const scoped: ScopedVars = { audience: { text: 'aud-7', value: 'aud-7' } };
    expect(newDataSource().applyTemplateVariables(query, scoped).audiences).toEqual(['aud-7']);
  });

  it('leaves absent lists absent', () => {
    const out = newDataSource().applyTemplateVariables({ refId: 'A', queryType: 'backfill_runs' }, {});
    expect(out.audiences).toBeUndefined();
    expect(out.campaigns).toBeUndefined();
    expect(out.lanes).toBeUndefined();
  });
});

describe('DataSource.filterQuery', () => {
  it('drops queries without a known type', () => {
    const ds = newDataSource();
    expect(ds.filterQuery({ refId: 'A' } as TidelineQuery)).toBe(false);
    expect(ds.filterQuery({ refId: 'A', queryType: 'nope' } as unknown as TidelineQuery)).toBe(false);
    expect(ds.filterQuery({ refId: 'A', queryType: 'pipeline_lag' })).toBe(true);
  });
});

describe('DataSource resources', () => {
  it('reads audiences and campaigns through getResource', async () => {
    const ds = newDataSource();
    const getResource = jest
      .spyOn(ds, 'getResource')
      .mockImplementation(async (path: string) => [{ id: `${path}-1`, name: path }]);
    await expect(ds.getAudiences()).resolves.toEqual([{ id: 'audiences-1', name: 'audiences' }]);
    await expect(ds.getCampaigns()).resolves.toEqual([{ id: 'campaigns-1', name: 'campaigns' }]);
    expect(getResource.mock.calls.map((c) => c[0])).toEqual(['audiences', 'campaigns']);
  });

  it('has audience_size as default query type', () => {
    expect(newDataSource().getDefaultQuery('dashboard' as never)).toEqual({ queryType: 'audience_size' });
  });
});

describe('DataSource.metricFindQuery', () => {
  it('lists audiences and campaigns by name, valued by id, and the lanes', async () => {
    const ds = newDataSource();
    ds.getAudiences = jest.fn().mockResolvedValue([
      { id: 'aud-1', name: 'Cart abandoners' },
      { id: 'aud-2', name: '' },
    ]);
    ds.getCampaigns = jest.fn().mockResolvedValue([{ id: 'camp-1', name: 'Spring sale' }]);
    expect(await ds.metricFindQuery('audiences')).toEqual([
      { text: 'Cart abandoners', value: 'aud-1' },
      { text: 'aud-2', value: 'aud-2' },
    ]);
    expect(await ds.metricFindQuery({ query: ' campaigns ' })).toEqual([{ text: 'Spring sale', value: 'camp-1' }]);
    expect((await ds.metricFindQuery('lanes')).map((v) => v.value)).toEqual(['web', 'server', 'backfill']);
  });

  it('says which queries exist when given another', async () => {
    await expect(newDataSource().metricFindQuery('customers')).rejects.toThrow(/audiences, campaigns, lanes/);
  });
});

describe('DataSource.previewAudience', () => {
  it('posts the definition to the audience-preview resource', async () => {
    const ds = newDataSource();
    const post = jest.spyOn(ds, 'postResource').mockResolvedValue({ audience_id: 'a' } as never);
    await expect(ds.previewAudience('id: a\n', 3)).resolves.toEqual({ audience_id: 'a' });
    expect(post).toHaveBeenCalledWith('audience-preview', { definition: 'id: a\n', sample: 3 });
  });
});
