import { DataSourcePlugin } from '@grafana/data';
import { DataSource } from './datasource';
import { ConfigEditor } from './components/ConfigEditor';
import { QueryEditor } from './components/QueryEditor';
import { TidelineDataSourceOptions, TidelineQuery, TidelineSecureJsonData } from './types';

export const plugin = new DataSourcePlugin<
  DataSource,
  TidelineQuery,
  TidelineDataSourceOptions,
  TidelineSecureJsonData
>(DataSource)
  .setConfigEditor(ConfigEditor)
  .setQueryEditor(QueryEditor);
