import { createRoot } from "react-dom/client";
import { loadRoutes } from "./api";
import { App } from "./App";
import "./styles.css";
import "./pages.css";

// Ask the server what it offers while React starts.
void loadRoutes();

createRoot(document.getElementById("root") as HTMLElement).render(<App />);
