// The application frame: navigation on the left, the page on the right.
import type { ReactNode } from "react";
import { Icon } from "../components/icons";
import { Link } from "../router";
import { useSession } from "../session";

const NAV = [
  { to: "/", label: "Home", icon: "home" },
  { to: "/profiles", label: "Profiles", icon: "users" },
  { to: "/segments", label: "Segments", icon: "layers" },
  { to: "/journeys", label: "Journeys", icon: "route" },
  { to: "/templates", label: "Templates", icon: "file" },
  { to: "/messages", label: "Messages", icon: "send" },
  { to: "/settings", label: "Settings", icon: "settings" },
];

function isActive(to: string, path: string) {
  return to === "/" ? path === "/" : path === to || path.startsWith(`${to}/`);
}

export function Shell({ path, full, children }: { path: string; full?: boolean; children: ReactNode }) {
  const { workspace, signOut } = useSession();
  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <aside className="sidebar">
        <Link to="/" className="brand" aria-label="Legato home">
          <span className="brand-mark" aria-hidden="true">
            L
          </span>
          <span className="brand-name">Legato</span>
        </Link>
        <nav aria-label="Main">
          <ul className="nav">
            {NAV.map((item) => {
              const active = isActive(item.to, path);
              return (
                <li key={item.to}>
                  <Link to={item.to} className={`nav-link${active ? " active" : ""}`} aria-current={active ? "page" : undefined}>
                    <Icon name={item.icon} size={18} />
                    <span>{item.label}</span>
                  </Link>
                </li>
              );
            })}
          </ul>
        </nav>
        <div className="sidebar-foot">
          <div className="workspace-chip" title={workspace.id}>
            <span className="workspace-avatar" aria-hidden="true">
              {workspace.name.slice(0, 1).toUpperCase()}
            </span>
            <span className="workspace-text">
              <span className="workspace-name">{workspace.name}</span>
              <span className="workspace-role">{workspace.role ?? "admin"} key</span>
            </span>
          </div>
          <button type="button" className="nav-link signout" onClick={() => signOut()}>
            <Icon name="logout" size={18} />
            <span>Sign out</span>
          </button>
        </div>
      </aside>
      <main id="main" className={`main${full ? " main-full" : ""}`} tabIndex={-1}>
        {children}
      </main>
    </div>
  );
}
