/**
 * The BFF's views, as its OpenAPI document describes them: aliases of the generated schemas
 * (`schema.d.ts`, `npm run gen:api`), so the components name what they show and a change of a
 * view on the BFF side fails `npm run typecheck` here.
 */
import type { components, paths } from './schema'

type Schemas = components['schemas']

export type ProductPage = Schemas['ProductPage']
export type CategoryPage = Schemas['CategoryPage']
export type HomePage = Schemas['HomePage']
export type ProductTile = Schemas['ProductTile']
export type Product = Schemas['Product']
export type Inventory = Schemas['Inventory']
export type Pricing = Schemas['Pricing']
export type Reviews = Schemas['Reviews']
export type Review = Schemas['Review']
export type Price = Schemas['Price']
export type PartError = Schemas['PartError']
export type StalePart = Schemas['StalePart']
export type Problem = Schemas['Problem']
export type CartPage = Schemas['CartPage']
export type CartPageLine = Schemas['CartPageLine']
export type Money = Schemas['Money']
export type Order = Schemas['Order']

/** Why a part failed: `timeout`, `unavailable`, `upstream_status`, ... */
export type FailureReason = PartError['reason']

/** The query parameters of the screens' routes. */
export type ProductQuery = NonNullable<paths['/api/aggregated/product']['get']['parameters']['query']>
export type CategoryQuery = NonNullable<paths['/api/aggregated/category']['get']['parameters']['query']>
export type HomeQuery = NonNullable<paths['/api/aggregated/home']['get']['parameters']['query']>

/** A part of the product page that `fields` may name. */
export type ProductPart = NonNullable<ProductQuery['fields']>[number]
