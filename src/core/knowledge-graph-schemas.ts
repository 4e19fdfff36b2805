import { z } from 'zod';
import { KG_LIMITS } from './knowledge-graph-model.ts';

// The shapes of the reference memory server's arguments, with bounds: shared by the REST routes and the MCP tools so
// both refuse the same things. Postgres text cannot hold U+0000, so no string may carry one.

const text = (max: number) => z.string().max(max).regex(/^[^\u0000]*$/, 'must not contain NUL characters');

export const kgName = text(KG_LIMITS.nameLength);
export const kgType = text(KG_LIMITS.typeLength);
export const kgObservation = text(KG_LIMITS.observationLength);
export const kgObservationList = z.array(kgObservation).max(KG_LIMITS.observationsPerEntity);
export const kgQuery = text(KG_LIMITS.queryLength);
export const kgBatch = <T extends z.ZodType>(item: T) => z.array(item).max(KG_LIMITS.batch);

export const entitySchema = z.object({
  name: kgName.describe('The name of the entity'),
  entityType: kgType.describe('The type of the entity'),
  observations: kgObservationList.describe('An array of observation contents associated with the entity'),
});
export const relationSchema = z.object({
  from: kgName.describe('The name of the entity where the relation starts'),
  to: kgName.describe('The name of the entity where the relation ends'),
  relationType: kgType.describe('The type of the relation'),
});
export const observationAdditionSchema = z.object({
  entityName: kgName.describe('The name of the entity to add the observations to'),
  contents: kgObservationList.describe('An array of observation contents to add'),
});
export const observationDeletionSchema = z.object({
  entityName: kgName.describe('The name of the entity containing the observations'),
  observations: kgObservationList.describe('An array of observations to delete'),
});
