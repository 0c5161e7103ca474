import { ErrorState } from './ErrorState'

/** A hash this SPA has no page for. */
export function NotFound({ path }: { path: string }) {
  return (
    <section className="page" data-testid="not-found-page" data-status="error">
      <ErrorState
        problem={{
          type: 'about:blank',
          title: 'Page not found',
          status: 404,
          detail: `There is no page at ${path}.`,
        }}
      />
    </section>
  )
}
