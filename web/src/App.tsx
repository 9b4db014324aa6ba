// Routes of the console. The journey builder (React Flow, YAML) loads on demand, so the first
// screen only downloads what it shows.
import { Suspense, lazy, useEffect } from "react";
import { Button, Card, EmptyState, Loading, PageHeader } from "./components/ui";
import { HomePage } from "./pages/Home";
import { Login } from "./pages/Login";
import { ProfilePage, ProfilesPage } from "./pages/Profiles";
import { SettingsPage } from "./pages/Settings";
import { Shell } from "./pages/Shell";
import { builderRouteKey } from "./journey/storage";
import { match, navigate, useLocation } from "./router";
import { SessionProvider } from "./session";

// Pages past the overview load on demand too, so the first screen stays small.
const SegmentsPage = lazy(() => import("./pages/Segments").then((m) => ({ default: m.SegmentsPage })));
const SegmentEditor = lazy(() => import("./pages/Segments").then((m) => ({ default: m.SegmentEditor })));
const SegmentPage = lazy(() => import("./pages/Segments").then((m) => ({ default: m.SegmentPage })));
const TemplatesPage = lazy(() => import("./pages/Templates").then((m) => ({ default: m.TemplatesPage })));
const TemplateEditor = lazy(() => import("./pages/Templates").then((m) => ({ default: m.TemplateEditor })));
const MessagesPage = lazy(() => import("./pages/Messages").then((m) => ({ default: m.MessagesPage })));
const JourneysPage = lazy(() => import("./pages/Journeys").then((m) => ({ default: m.JourneysPage })));
const JourneyRoute = lazy(() => import("./pages/Journeys").then((m) => ({ default: m.JourneyRoute })));

const TITLES: Array<[string, string]> = [
  ["/profiles", "Profiles"],
  ["/segments", "Segments"],
  ["/journeys", "Journeys"],
  ["/templates", "Templates"],
  ["/messages", "Messages"],
  ["/settings", "Settings"],
];

function NotFoundPage() {
  return (
    <>
      <PageHeader title="Page not found" />
      <Card>
        <EmptyState icon="alert" title="There is no console page at this address" action={<Button onClick={() => navigate("/")}>Go to the overview</Button>} />
      </Card>
    </>
  );
}

function Pages() {
  const { path, query } = useLocation();
  useEffect(() => {
    const title = TITLES.find(([p]) => path === p || path.startsWith(`${p}/`))?.[1] ?? "Overview";
    document.title = `${title} · Legato`;
  }, [path]);

  let page;
  let full = false;
  let params: Record<string, string> | null;
  if (path === "/") page = <HomePage />;
  else if (path === "/profiles") page = <ProfilesPage />;
  else if ((params = match("/profiles/:id", path))) page = <ProfilePage key={params.id} id={params.id} />;
  else if (path === "/segments") page = <SegmentsPage />;
  else if (path === "/segments/new") page = <SegmentEditor key="new" segmentKey={null} />;
  else if ((params = match("/segments/:key/edit", path))) page = <SegmentEditor key={`edit:${params.key}`} segmentKey={params.key} />;
  else if ((params = match("/segments/:key", path))) page = <SegmentPage key={params.key} segmentKey={params.key} />;
  else if (path === "/templates") page = <TemplatesPage />;
  else if (path === "/templates/new") page = <TemplateEditor key="new" templateKey={null} />;
  else if ((params = match("/templates/:key", path))) page = <TemplateEditor key={params.key} templateKey={params.key} />;
  else if (path === "/messages") page = <MessagesPage />;
  else if (path === "/settings") page = <SettingsPage />;
  else if (path === "/journeys") page = <JourneysPage />;
  else if (path === "/journeys/new") {
    const token = query.get("draft");
    page = <JourneyRoute key={`new:${token}`} journeyKey={null} draftToken={token} />;
    full = true;
  } else if ((params = match("/journeys/:key", path))) {
    page = <JourneyRoute key={builderRouteKey(params.key)} journeyKey={params.key} draftToken={null} />;
    full = true;
  } else page = <NotFoundPage />;

  return (
    <Shell path={path} full={full}>
      <Suspense fallback={<Loading />}>{page}</Suspense>
    </Shell>
  );
}

export function App() {
  return (
    <SessionProvider login={(props) => <Login {...props} />}>
      <Pages />
    </SessionProvider>
  );
}
